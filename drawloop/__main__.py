from drawloop.cli import main

main()
