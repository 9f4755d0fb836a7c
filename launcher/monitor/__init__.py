"""The management interfaces: QMP (``qmp.py``) and the human monitor (``hmp.py``) over
character devices (``consoles.py`` sets them up from the command line), acting on the
machine through ``vm.py``."""
