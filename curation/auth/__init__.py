"""Identity and roles: local accounts (argon2 password hashes), OIDC users, the acting
user every write function takes, and the checks that refuse what a role does not allow."""

from curation.auth.accounts import (
    AccountError,
    UserView,
    add_user,
    authenticate,
    find_actor,
    list_users,
    set_disabled,
    set_password,
    set_role,
)
from curation.auth.identity import (
    AUTH_ENV,
    USER_ENV,
    IdentityError,
    auth_disabled,
    cli_actor,
    command_actor,
    open_actor,
)
from curation.auth.roles import (
    ALLOWED,
    WRITE_FUNCTIONS,
    Action,
    Actor,
    PermissionDenied,
    Role,
    require,
    writes,
)

__all__ = [
    "ALLOWED",
    "AUTH_ENV",
    "USER_ENV",
    "WRITE_FUNCTIONS",
    "AccountError",
    "Action",
    "Actor",
    "IdentityError",
    "PermissionDenied",
    "Role",
    "UserView",
    "add_user",
    "auth_disabled",
    "authenticate",
    "cli_actor",
    "command_actor",
    "find_actor",
    "list_users",
    "open_actor",
    "require",
    "set_disabled",
    "set_password",
    "set_role",
    "writes",
]
