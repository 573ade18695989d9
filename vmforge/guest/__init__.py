"""Talking to a running guest: transports (guest agent, later WinRM/SSH), OS adapters, phase markers."""
