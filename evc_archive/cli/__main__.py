from evc_archive.cli.app import main

main()
