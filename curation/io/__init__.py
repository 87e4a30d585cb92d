"""Input and output: the interchange format (readers), the all-or-nothing import job, the export writers."""
