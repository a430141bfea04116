"""Pure models shared by every part of policyflow: no I/O, no framework state."""
