"""What front ends see of a node: typed views, events, the command table, the socket client."""
