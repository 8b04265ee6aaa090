from vidtwin_cli.app import entry

entry()
