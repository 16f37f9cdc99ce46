"""dialsgate: conformance checks and tooling for DIALS MLServer model folders.

Driven by a DISM ``template.yaml``: nothing here knows about a particular model.
"""
