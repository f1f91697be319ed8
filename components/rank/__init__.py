"""rank component: transferability scores of candidate modules on the target's labelled examples."""
