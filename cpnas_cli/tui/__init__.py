"""The live dashboard of a run (`cpnas watch`): Textual, fed only by the event log. Imports no torch."""
