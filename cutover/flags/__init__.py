"""The flags: the flagd flag set a phase or a flag state renders to (`document`), the typed flag
state and its checks (`state`), where the flags live (`backend`: the flag file), and how they change
(`change`: one function for people and the controller, and what a rollback is). Imports only the plan."""
