"""Operating-system families: what a root's files and registry say
(pure parsers), the Linux and Windows policies, the billing decision
across roots (``facts``) and the licence product table.  Pure code.
"""
