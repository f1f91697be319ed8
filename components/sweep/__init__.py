"""sweep component: data-efficiency grid points condensed and gathered into a learning curve."""
