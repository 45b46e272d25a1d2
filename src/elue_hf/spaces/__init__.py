"""The logic of the two Hugging Face Spaces (the thin ``app.py`` files under the repository's ``spaces/`` call these).

- :mod:`.leaderboard`: the ELUE leaderboard app (gradio): rankings, Pareto pages, submissions, About;
- :mod:`.metric`: the ELUE metric widget built on ``evaluate.load("elue")``.
"""
