from mostrador.cli import main

main()
