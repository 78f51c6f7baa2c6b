from embguard.cli import main

main()
