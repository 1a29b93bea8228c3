"""The new live figures of lecture 12's walk (the Lecture page), one module per idea."""
