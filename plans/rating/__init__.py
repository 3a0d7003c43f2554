"""The pure rating engine (`engine`) and the words of its lines (`messages`): no Django, no
database; the price book's callers build its inputs."""
