"""pusher component: the model in production (the resolve step) and compare-and-push into the serving folder
(the push step).
"""
