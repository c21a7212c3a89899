"""Controllers that run the domain services the way Kubernetes' controllers do:
work queues, workers, periodic loops, XO change triggers, a leader gate."""
