from polydistill.cli import main

main()
