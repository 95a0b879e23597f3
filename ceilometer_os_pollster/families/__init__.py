"""Operating-system families: one module per family (``windows``,
``linux``; ``known`` lists them, and is where a new one plugs in) with
SQL Server (``sqlserver``) and Windows editions (``windows_editions``)
beside them; what a root's files and registry say (pure parsers), the
billing decision across roots (``facts``) and the licence product table
gathered from the families (``licences``).  Pure code.
"""
