from trackly_cli.cli import main

main()
