"""Where the tracker's index lives: the interface (base.py) and its backends, memory
(tracker/index.py) and Redis (redis_store.py); factory.py opens the one `--store` names.
"""
