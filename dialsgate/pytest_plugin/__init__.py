"""dialsgate in pytest: the plugin (options, fixtures, the layers' modules), the check cases as
parameters (``parametrize_with_checks``), and the result kinds the gate records."""
