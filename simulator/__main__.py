"""``python -m simulator [--port 0 --rate 50000 ...]``: the venue process (see simulator.app)."""

from simulator.app import main

if __name__ == "__main__":
    main()
