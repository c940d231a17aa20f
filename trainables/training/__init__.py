"""How a trial trains: the loop, the engine (DeepSpeed), sessions, the Ray Tune and Ray Train adapters."""
