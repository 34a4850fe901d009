//! Community membership rules on both backends: invites, bans, kicks, private groups, DMs.

use crate::common::{self, Prepare, on_both_backends};

use app::{
    error::AppError,
    model::{CommunityCreationMode, RegistrationMode},
};
use chrono::Utc;
use common::{err, new_user};
use domain::spaces;

on_both_backends! {
    async fn every_channel_says_since_when_the_caller_can_read_it(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let at = |s: &Option<String>| chrono::DateTime::parse_from_rfc3339(s.as_deref().expect("a since")).unwrap();
        let (owner, bob) = (new_user(&state.db, "owner").await, new_user(&state.db, "bob").await);
        let club = spaces::create_community(&state, &owner, CommunityCreationMode::Open, "Club", "").await.unwrap();
        let invite = spaces::create_invite(&state, owner.id, club, None, None).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let before_join = Utc::now();
        spaces::join(&state, bob.id, &invite.code).await.unwrap();
        let general = |mine: app::model::spaces::MySpaces| mine.communities[0].groups[0].channels[0].clone();
        let owners = general(spaces::my_spaces(&state, owner.id).await.unwrap());
        let bobs = general(spaces::my_spaces(&state, bob.id).await.unwrap());
        assert!(at(&owners.since) < before_join && at(&bobs.since) >= before_join, "{:?} {:?}", owners.since, bobs.since);
        assert_eq!(spaces::channel_summary(&state, bob.id, bobs.id).await.unwrap().since, bobs.since);

        // A private group: from being added to it, though the community was joined earlier.
        let staff = spaces::create_group(&state, owner.id, club, "Staff", true).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        spaces::add_group_member(&state, owner.id, staff.id, bob.id).await.unwrap();
        let plans = spaces::my_spaces(&state, bob.id).await.unwrap().communities[0].groups.iter().find(|g| g.id == staff.id).unwrap().channels[0].clone();
        assert!(at(&plans.since) > at(&bobs.since));
        assert_eq!(spaces::channel_summary(&state, bob.id, plans.id).await.unwrap().since, plans.since);

        // A DM: from when it was opened.
        let dm = spaces::open_dm(&state, owner.id, bob.id).await.unwrap();
        assert!(at(&dm.since) >= at(&plans.since));
        assert_eq!(spaces::my_spaces(&state, bob.id).await.unwrap().direct[0].since, dm.since);
    }

    async fn moderators_choose_whether_newcomers_read_history(db: TestDb) {
        use app::model::spaces::{CommunityRole, HistoryVisibility};
        let state = db.state(RegistrationMode::Open).await;
        let (owner, ann, bob) = (new_user(&state.db, "owner").await, new_user(&state.db, "ann").await, new_user(&state.db, "bob").await);
        let club = spaces::create_community(&state, &owner, CommunityCreationMode::Open, "Club", "").await.unwrap();
        let invite = spaces::create_invite(&state, owner.id, club, None, None).await.unwrap();
        for u in [&ann, &bob] {
            spaces::join(&state, u.id, &invite.code).await.unwrap();
        }
        spaces::set_role(&state, owner.id, club, ann.id, CommunityRole::Moderator).await.unwrap();
        let general = spaces::my_spaces(&state, bob.id).await.unwrap().communities[0].groups[0].channels[0].clone();
        assert_eq!(general.history, HistoryVisibility::Joined, "new channels start with history from joining");

        assert_eq!(err(spaces::set_history(&state, bob.id, general.id, HistoryVisibility::Full).await.unwrap_err()), AppError::Forbidden);
        let changed = spaces::set_history(&state, ann.id, general.id, HistoryVisibility::Full).await.unwrap();
        assert_eq!(changed.history, HistoryVisibility::Full);
        assert_eq!(spaces::channel_summary(&state, bob.id, general.id).await.unwrap().history, HistoryVisibility::Full);
        assert_eq!(spaces::my_spaces(&state, bob.id).await.unwrap().communities[0].groups[0].channels[0].history, HistoryVisibility::Full);

        let dm = spaces::open_dm(&state, ann.id, bob.id).await.unwrap();
        assert_eq!(dm.history, HistoryVisibility::Joined);
        assert!(err(spaces::set_history(&state, ann.id, dm.id, HistoryVisibility::Full).await.unwrap_err()).for_field("history").is_some());
    }

    async fn invite_codes_cannot_be_guessed_at_speed(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let (owner, eve) = (new_user(&state.db, "owner").await, new_user(&state.db, "eve").await);
        let club = spaces::create_community(&state, &owner, CommunityCreationMode::Open, "Club", "").await.unwrap();
        let real = spaces::create_invite(&state, owner.id, club, None, None).await.unwrap();
        // eve tries 30 codes at once: every try counts, atomically, wrong or not.
        let tries: Vec<_> = (0..30)
            .map(|i| {
                let core = state.clone();
                tokio::spawn(async move { spaces::join(&core, eve.id, &format!("GUESS{i:07}")).await.map_err(err) })
            })
            .collect();
        let (mut wrong, mut limited) = (0, 0);
        for t in tries {
            match t.await.unwrap() {
                Err(AppError::RateLimited { .. }) => limited += 1,
                Err(e) if e.for_field("code").is_some() => wrong += 1,
                other => panic!("a guess got {other:?}"),
            }
        }
        assert_eq!((wrong, limited), (spaces::JOINS_PER_HOUR as usize, 30 - spaces::JOINS_PER_HOUR as usize));
        // Until the hour is over, even the right code waits: a guess that happens to be right
        // cannot be told apart.
        assert!(matches!(err(spaces::join(&state, eve.id, &real.code).await.unwrap_err()), AppError::RateLimited { .. }));
        // Someone else joins with it.
        let ann = new_user(&state.db, "ann").await;
        assert_eq!(spaces::join(&state, ann.id, &real.code).await.unwrap(), club);
    }

    async fn invites_bans_and_kicks(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let db = &state.db;
        let core = &state;
        let (owner, ann, bob) = (new_user(db, "owner").await, new_user(db, "ann").await, new_user(db, "bob").await);
        let club = spaces::create_community(core, &owner, CommunityCreationMode::Open, "  Club  ", "about").await.unwrap();
        let once = spaces::create_invite(core, owner.id, club, Some(1), Some(24)).await.unwrap();
        assert_eq!(once.code.len(), 12);
        assert_eq!(spaces::join(core, ann.id, &once.code.to_lowercase()).await.unwrap(), club);
        assert!(err(spaces::join(core, bob.id, &once.code).await.unwrap_err()).for_field("code").is_some(), "used-up invite accepted");

        // The new member is in the public group at once.
        let mine = spaces::my_spaces(core, ann.id).await.unwrap();
        assert_eq!(mine.communities[0].name, "Club");
        assert_eq!(mine.communities[0].groups[0].channels[0].name, "general");

        // A ban removes and keeps out; an unban lets back in with an invite.
        let open = spaces::create_invite(core, owner.id, club, None, None).await.unwrap();
        spaces::ban(core, owner.id, club, ann.id, "spam").await.unwrap();
        assert!(spaces::my_spaces(core, ann.id).await.unwrap().communities.is_empty());
        assert!(err(spaces::join(core, ann.id, &open.code).await.unwrap_err()).for_field("code").unwrap().contains("banned"));
        spaces::unban(core, owner.id, club, ann.id).await.unwrap();
        spaces::join(core, ann.id, &open.code).await.unwrap();

        // A kicked moderator loses the private group too, and does not get it back by rejoining.
        spaces::join(core, bob.id, &open.code).await.unwrap();
        spaces::set_role(core, owner.id, club, bob.id, app::model::spaces::CommunityRole::Moderator).await.unwrap();
        let staff = spaces::create_group(core, owner.id, club, "Staff", true).await.unwrap();
        assert_eq!(staff.channels.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["general"]);
        spaces::add_group_member(core, owner.id, staff.id, bob.id).await.unwrap();
        let plans = spaces::create_channel(core, owner.id, staff.id, "plans").await.unwrap();
        spaces::channel_summary(core, bob.id, plans.id).await.unwrap();
        spaces::kick(core, owner.id, club, bob.id).await.unwrap();
        assert_eq!(err(spaces::channel_summary(core, bob.id, plans.id).await.unwrap_err()), AppError::NotFound);
        spaces::join(core, bob.id, &open.code).await.unwrap();
        assert_eq!(err(spaces::channel_summary(core, bob.id, plans.id).await.unwrap_err()), AppError::NotFound);

        // Expired invites are refused.
        let expiring = spaces::create_invite(core, owner.id, club, None, Some(1)).await.unwrap();
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        entity::community_invite::Entity::update_many()
            .col_expr(entity::community_invite::Column::ExpiresAt, Expr::value(Utc::now() - chrono::Duration::minutes(1)))
            .filter(entity::community_invite::Column::Code.eq(&expiring.code))
            .exec(db)
            .await
            .unwrap();
        let carl = new_user(db, "carl").await;
        assert!(spaces::join(core, carl.id, &expiring.code).await.is_err());

        // Names are validated.
        assert!(err(spaces::create_group(core, owner.id, club, "   ", false).await.unwrap_err()).for_field("name").is_some());
        assert!(err(spaces::create_channel(core, owner.id, staff.id, &"x".repeat(65)).await.unwrap_err()).for_field("name").is_some());
        // A right-to-left override would make "lareneg" read as "general" in every sidebar.
        assert!(err(spaces::create_channel(core, owner.id, staff.id, "\u{202E}lareneg").await.unwrap_err()).for_field("name").is_some());
        assert!(err(spaces::create_community(core, &owner, CommunityCreationMode::Open, "Club\u{200B}", "").await.unwrap_err()).for_field("name").is_some());
    }

    async fn one_dm_per_pair_even_when_racing(db: TestDb) {
        let state = db.state(RegistrationMode::Open).await;
        let db = &state.db;
        let core = &state;
        let (a, b, c) = (new_user(db, "a").await, new_user(db, "b").await, new_user(db, "c").await);
        let club = spaces::create_community(core, &a, CommunityCreationMode::Open, "Club", "").await.unwrap();
        let invite = spaces::create_invite(core, a.id, club, None, None).await.unwrap();
        spaces::join(core, b.id, &invite.code).await.unwrap();
        // c shares no community with a: a DM is "not found", so user ids cannot be probed.
        assert_eq!(err(spaces::open_dm(core, a.id, c.id).await.unwrap_err()), AppError::NotFound);

        let (x, y) = tokio::join!(spaces::open_dm(core, a.id, b.id), spaces::open_dm(core, b.id, a.id));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.id, y.id);
        assert_eq!(spaces::open_dm(core, a.id, b.id).await.unwrap().id, x.id);
        assert_eq!(x.members.len(), 2);
        assert_eq!(spaces::my_spaces(core, b.id).await.unwrap().direct.len(), 1);
        assert!(err(spaces::open_dm(core, a.id, a.id).await.unwrap_err()).for_field("user").is_some());
    }
}
