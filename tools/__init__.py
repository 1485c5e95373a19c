"""What an owner runs once, outside `pulumi up`."""
