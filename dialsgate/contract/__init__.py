"""The deployment contract: the DISM template (what DIALS sends and expects back), its resources
and Kubernetes quantities, and the offline equivalent of ``dismcli build``."""
