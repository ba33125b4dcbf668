#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings")
    # manage.py is the developer's tool: development mode unless DEBUG=0 is set (production
    # sets it, with a real SECRET_KEY; the web and worker processes never default to it).
    os.environ.setdefault("DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
