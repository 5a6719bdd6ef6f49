"""The echo bot from simplematrixbotlib's README: a bot someone else wrote, for our tests.

Kept as close to the README as possible. Only two things are added:

* credentials come from MBT_BOT_HOMESERVER, MBT_BOT_USER (localpart or full
  Matrix ID; both work for a password login) and MBT_BOT_PASSWORD;
* a line ``ready`` on stdout once the bot is syncing, for the test fixture.

simplematrixbotlib writes ``session.txt`` and ``store/`` into the current
directory, so run it in a temporary one.

What the library does (its 2.13.1 source, checked against Synapse):

* it joins rooms it is invited to (``Config.join_on_invite``, on by default),
  but only invites that arrive after it started: one already pending at start
  stays pending;
* it answers with ``m.text`` (``send_text_message``'s default), so two such
  bots could answer each other;
* it skips messages that are in its first sync, but answers the backlog of a
  room it joins later, however old;
* the README's handler answers anyone; the library's allowlist (users of the
  bot's own homeserver by default) applies only when a handler asks for it.
"""

import os

import nio
import simplematrixbotlib as botlib

creds = botlib.Creds(
    os.environ["MBT_BOT_HOMESERVER"],
    os.environ["MBT_BOT_USER"],
    os.environ["MBT_BOT_PASSWORD"],
)
bot = botlib.Bot(creds)
PREFIX = "!"


@bot.listener.on_message_event
async def echo(room, message):
    match = botlib.MessageMatch(room, message, bot, PREFIX)

    if match.is_not_from_this_bot() and match.prefix() and match.command("echo"):
        await bot.api.send_text_message(room.room_id, " ".join(arg for arg in match.args()))


# Not in the README: print "ready" once the bot is syncing. The library's own
# hook, @bot.listener.on_startup, runs once per joined room, so a fresh account
# with no rooms never triggers it. nio's response callbacks do run for every
# sync of sync_forever(), which the library starts only after registering its
# event callbacks; the nio client exists once the library has logged in.
_library_login = bot.api.login
_announced = False


async def _say_ready(response):
    global _announced
    if not _announced:
        _announced = True
        print("ready", flush=True)


async def _login_then_watch_syncs():
    await _library_login()
    bot.api.async_client.add_response_callback(_say_ready, nio.SyncResponse)


bot.api.login = _login_then_watch_syncs

bot.run()
