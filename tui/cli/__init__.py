"""The omnitensor command line, split by audience: node, network, operator."""
