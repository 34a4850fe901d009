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
