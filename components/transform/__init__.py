"""transform component: ingested examples decoded, resized and scaled, with statistics and bad records, in Beam
(spec.py: the transform step).
"""
