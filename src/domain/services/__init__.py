"""The three services. They take ports in ``__init__`` and do no I/O of their own."""

from domain.services.label_sync import LabelSyncService
from domain.services.lifecycle import LifecycleService
from domain.services.registration import RegistrationService

__all__ = ["LabelSyncService", "LifecycleService", "RegistrationService"]
