"""``vmforge create``: the whole job as named, resumable steps (see docs/create.md)."""
