# An empty file is a valid config: every default applies, and nothing is served.
