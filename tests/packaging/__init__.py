"""Packaging and deployment: the chart, the manifests, RBAC and the image build."""
