"""Applications: what composes the layers into one job (build a model's engines, evaluate them, benchmark the
backends, check a target, play a bag into a live graph). Above the node in the tower: an application may import
any layer, the node included; no layer imports an application. The commands (``commands/``) parse a command line
and call one of these."""
