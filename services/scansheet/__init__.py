"""The scan-sheet service: the study monitor and the writer of each study's scan sheet."""
