"""Bare metal: Ansible inventory and variables derived from the stack spec."""
