"""Windows registry hives (REGF).
"""
