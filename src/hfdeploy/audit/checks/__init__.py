"""One pure check per audit rule, by area; ``audit/rules.py`` maps rule ids to them."""
