"""Generated betterproto code for Spider's protocol. Run `nox -s proto` to regenerate."""
