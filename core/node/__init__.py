"""The contributor's node: telemetry, guard, store, worker, network link, control socket."""
