"""No Django models: rexecutor keeps its own tables, created and upgraded by its own versioned
migrations. (This module exists so that Django sends this app ``post_migrate``, after which
those migrations run too.)"""
