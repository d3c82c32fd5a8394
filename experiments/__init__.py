"""Studies: experiments run with ``python -m experiments.<name>`` from the repository root."""
