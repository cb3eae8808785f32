"""Built-in lab scenarios (YAML, DESIGN.md section 6); a package so that they ship in the wheel."""
