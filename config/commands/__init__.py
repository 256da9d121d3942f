"""The `evidence` command's subcommands, one module per group of commands.

Each module defines its commands without attaching them and offers
``register(main)``, which `config.cli` calls for every module: the modules
never import `config.cli`, which under ``python -m config.cli`` runs as
``__main__`` and would otherwise be loaded a second time with a second main
group. The shared consoles, error handling and printers are in `base`.
"""
