"""An app whose import fails with a traceback that names this file."""

import this_module_does_not_exist  # noqa: F401

application = None
