"""The local stack: an embedded AWS emulator (Cloud Map, ECS) and an ECS-like task runner.

Needs the ``local`` extra (``moto[server]``).
"""
