"""The audit log: who changed what, for operators (``GET /api/v1/admin/audit``)."""
