"""Git integration: trees at a ref (pygit2), plans (deepdiff + renderers), merge driver, textconv."""
