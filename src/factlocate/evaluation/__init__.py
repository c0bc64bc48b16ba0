"""Evaluation runs: the edit/post/revert/pre protocol (`runner`), reports (`report`), Figure 5 (`sweep`)."""
