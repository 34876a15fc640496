"""Operations as sequences of named steps, between the HTTP views and the store."""

from .context import Context
from .practitioner_role import create_practitioner_role, read_practitioner_role

__all__ = ["Context", "create_practitioner_role", "read_practitioner_role"]
