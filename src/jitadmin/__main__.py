from jitadmin.entrypoints.cli import main

main()
